pub mod feed;
pub mod shapes;
